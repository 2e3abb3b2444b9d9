"""LLM providers behind the agents: the contract, reply parsing and the offline provider."""
