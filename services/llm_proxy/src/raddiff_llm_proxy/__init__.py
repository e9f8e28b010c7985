"""RadDiff's LLM proxy: one gRPC Chat in front of any OpenAI-compatible upstream."""
