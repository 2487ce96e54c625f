"""Whether a release logs everyone out: the markers, the history, and `decide()`."""
