"""Strategy cards (data files) and the retriever that matches them on a profile."""
