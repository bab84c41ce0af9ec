"""Pure helpers of the GCP components: policy parsing, labels, names, CIDR split, kubeconfig, TPU placement."""

from __future__ import annotations

import ipaddress
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_infra.components.gcp.cluster import gke_kubeconfig, logging_components
from mlops_infra.components.gcp.labels import account_id, gcp_labels
from mlops_infra.components.gcp.network import split_cidr
from mlops_infra.components.gcp.node_pools import tpu_workload_placement
from mlops_infra.components.gcp.storage import bucket_name
from mlops_infra.components.gcp.workload_identity import (
    Grant,
    PolicyError,
    parse_policy,
    workload_identity_member,
)


def test_policy_forms() -> None:
    assert parse_policy("") == []
    assert parse_policy("[]") == []
    assert parse_policy('["roles/monitoring.viewer"]') == [Grant("roles/monitoring.viewer")]
    assert parse_policy('{"bucket": "b-1", "role": "roles/storage.objectUser"}') == [
        Grant("roles/storage.objectUser", "b-1")
    ]
    assert parse_policy('["roles/logging.logWriter", {"bucket": "models"}]') == [
        Grant("roles/logging.logWriter"),
        Grant("roles/storage.objectViewer", "models"),
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"Version": "2012-10-17", "Statement": []}', "AWS IAM policy"),
        ('["roles/editor"]', "basic role"),
        ('["storage.admin"]', "is not an IAM role"),
        ('["roles/storage.objectAdmin"]', "bind it to a bucket"),
        ('{"bucket": "Bad_Bucket!"}', "not a GCS bucket name"),
        ('{"role": "roles/storage.objectUser"}', "keys bucket and role"),
        ("[42]", "role string or a bucket binding"),
    ],
)
def test_bad_policies_are_refused_with_a_reason(text: str, fragment: str) -> None:
    with pytest.raises(PolicyError, match=re.escape(fragment)):
        parse_policy(text)


def test_workload_identity_member() -> None:
    assert workload_identity_member("p-1", "ns", "sa") == "serviceAccount:p-1.svc.id.goog[ns/sa]"


def test_labels_are_sanitized_and_collisions_refused() -> None:
    assert gcp_labels({"costCenter": "4711", "Team": "ML Platform", "9x": "A/B"}) == {
        "cost_center": "4711",
        "k_9x": "a_b",
        "team": "ml_platform",
    }
    with pytest.raises(ValueError, match="both become"):
        gcp_labels({"cost_center": "1", "costCenter": "2"})


@given(st.dictionaries(st.text(min_size=1, max_size=80), st.text(max_size=80), max_size=5))
def test_labels_always_valid(tags: dict[str, str]) -> None:
    try:
        labels = gcp_labels(tags)
    except ValueError:
        return
    for key, value in labels.items():
        assert re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key)
        assert re.fullmatch(r"[a-z0-9_-]{0,63}", value)


@given(st.text(min_size=1, max_size=60))
def test_account_ids_are_valid(text: str) -> None:
    assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", account_id(text + "x"))


def test_bucket_name_is_stable_and_bounded() -> None:
    assert bucket_name("p", "c", "mlflow") == "p-c-mlflow"
    long = bucket_name("a" * 30, "b" * 30, "mlflow")
    assert len(long) <= 63 and long == bucket_name("a" * 30, "b" * 30, "mlflow")


@pytest.mark.parametrize("cidr", ["10.0.0.0/16", "10.20.0.0/16", "172.16.0.0/18", "192.168.0.0/20"])
def test_cidr_split_does_not_overlap(cidr: str) -> None:
    ranges = split_cidr(cidr)
    nets = [ipaddress.ip_network(r) for r in (ranges.nodes, ranges.services, ranges.pods)]
    parent = ipaddress.ip_network(cidr)
    assert all(n.subnet_of(parent) for n in nets)  # type: ignore[arg-type]
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
    assert ranges.node_capacity == nets[2].num_addresses // 256


def test_kubeconfig_uses_the_auth_plugin() -> None:
    config = json.loads(gke_kubeconfig("c", "10.0.0.2", "Q0E="))
    assert config["clusters"][0]["cluster"] == {
        "server": "https://10.0.0.2",
        "certificate-authority-data": "Q0E=",
    }
    assert config["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"


def test_logging_components_map_eks_names() -> None:
    assert logging_components(["api", "audit", "scheduler"]) == [
        "SYSTEM_COMPONENTS",
        "WORKLOADS",
        "APISERVER",
        "SCHEDULER",
    ]


def test_tpu_placement_for_a_multi_host_slice() -> None:
    placement = tpu_workload_placement("ct5lp-hightpu-4t", "4x4")
    assert placement.hosts == 4 and placement.chips_per_host == 4
    assert placement.node_selector == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
        "cloud.google.com/gke-tpu-topology": "4x4",
    }
    with pytest.raises(ValueError, match="not a TPU machine type"):
        tpu_workload_placement("g2-standard-8", "2x2")
    with pytest.raises(ValueError, match="not supported"):
        tpu_workload_placement("ct5lp-hightpu-4t", "3x3")
