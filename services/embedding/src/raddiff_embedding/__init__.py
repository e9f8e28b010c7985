"""RadDiff's embedding service: the CheXzero role (CLIP image and text vectors for chest X-rays)."""
