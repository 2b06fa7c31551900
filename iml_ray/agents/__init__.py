"""The agents of a run, one module each: its class, its rules entry point, its LLM step, and beside it
its prompt (`<agent>.md`) and the parser of the answer. No Ray here: `actors/` wraps them."""
