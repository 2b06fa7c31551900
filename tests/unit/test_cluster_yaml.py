"""cluster.yaml cannot be launched here; it is checked against the launcher's own schema and defaults."""
from __future__ import annotations

from pathlib import Path

import yaml

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


def _config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_passes_the_ray_launchers_schema():
    from ray.autoscaler._private.util import validate_config
    from ray.autoscaler.sdk import fillout_defaults

    filled = fillout_defaults(_config())     # what `ray up` does first: merge the provider's defaults
    validate_config(filled)                  # raises jsonschema.ValidationError on a wrong key or type
    assert filled["head_node_type"] in filled["available_node_types"]


def test_cluster_has_a_cpu_head_and_autoscaling_gpu_workers():
    config = _config()
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    gpu_workers = [t for name, t in types.items() if name != config["head_node_type"] and t["resources"].get("GPU", 0) >= 1]
    assert gpu_workers and all(t["min_workers"] == 0 and t["max_workers"] > 0 for t in gpu_workers)


def test_cluster_image_pins_the_ray_minor_iml_ray_supports_and_sizes_shm():
    import ray

    config = _config()
    image = config["docker"]["image"]
    major_minor = ".".join(ray.__version__.split(".")[:2])
    assert image.startswith(f"rayproject/ray:{major_minor}.")
    assert any(option.startswith("--shm-size=") for option in config["docker"]["run_options"])
    assert any("iml-ray" in command and "pip install" in command for command in config["setup_commands"])
