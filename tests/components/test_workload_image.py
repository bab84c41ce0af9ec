"""Workload images are built from this repository's `workloads/<name>/`: the tag is the content hash of a real
build context (it was the hash of an empty directory when the default context root pointed one level too
high, so every image got the same tag and nothing would ever roll out)."""

from __future__ import annotations

import hashlib

from mlops_infra.components.images import WorkloadImageArgs, bundled_contexts

from plan_support import ROOT, reference_plan

EMPTY_TAG = hashlib.sha256().hexdigest()[:16]


def test_in_a_checkout_the_default_context_root_is_the_repositorys_workloads() -> None:
    """An editable install builds from workloads/ (a wheel from its own copy: scripts/wheel_test.sh)."""
    assert bundled_contexts() == ROOT / "workloads"
    assert (
        WorkloadImageArgs(workload="serving", registry=None).context_root / "serving" / "Dockerfile"
    ).is_file()  # type: ignore[arg-type]


def test_each_workload_image_has_its_own_content_tag() -> None:
    images = reference_plan("prod").of_type("docker:index/image:Image")
    tags = {r.name: str(r.inputs["imageName"]).rsplit(":", 1)[-1] for r in images}
    assert set(tags) == {"serving-image", "retraining-image"}
    assert EMPTY_TAG not in tags.values()
    assert len(set(tags.values())) == 2
    for r in images:
        assert (ROOT / "workloads").as_posix() in r.inputs["build"]["context"]
