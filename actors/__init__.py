"""Ray faces of the agents: thin shells around iml_ray, nothing else.

The agents of a competition live in one AgentHost actor, which mostly waits and
so asks for no CPU (`num_cpus=0`); the work that runs generated code is a Ray
task with explicit resources (actors/track.py).
"""
