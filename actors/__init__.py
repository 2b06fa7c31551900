"""Ray faces of the agents: thin shells around iml_ray, nothing else.

Each agent is a named actor shared by every competition of a job (it mostly
waits, so it asks for no CPU: `num_cpus=0`); its heavy calls and the work that
runs generated code are Ray tasks with explicit resources (actors/agents.py,
actors/track.py).
"""
