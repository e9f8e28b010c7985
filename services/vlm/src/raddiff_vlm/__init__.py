"""RadDiff's vision-language model service (the CheXagent role)."""
