"""RadDiff's evaluation service: judges ranked findings against the truths of A and B."""
