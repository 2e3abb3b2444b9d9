"""Strategy agents (one small module per strategy), the roster, and the CEO's portfolio review."""
