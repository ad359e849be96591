"""SB3 training helpers, export and deployment (later issues)."""
