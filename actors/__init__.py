"""Ray faces of the agents: thin shells around iml_ray, nothing else.

Agent actors mostly wait, so they ask for no CPU (`num_cpus=0`); the work that
runs generated code is a Ray task with explicit resources (actors/track.py).
"""
