"""The container shape (images/shape.yml) is used unchanged by every Molecule platform and the lab."""

import glob
import os

import pytest
import yaml

from conftest import REPO

with open(os.path.join(REPO, "images", "shape.yml")) as fh:
    SHAPE = yaml.safe_load(fh)


def _platforms():
    files = [os.path.join(REPO, ".config", "molecule", "config.yml")]
    files += sorted(glob.glob(os.path.join(REPO, "molecule", "*", "molecule.yml")))
    for path in files:
        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
        for platform in data.get("platforms", []):
            yield os.path.relpath(path, REPO), platform


PLATFORMS = list(_platforms())


def test_shape_is_systemd_without_privileged():
    assert SHAPE["command"] == "/sbin/init"
    assert "SYS_ADMIN" in SHAPE["capabilities"]
    assert SHAPE["cgroupns_mode"] == "host"
    assert "privileged" not in SHAPE


@pytest.mark.parametrize("path,platform", PLATFORMS,
                         ids=[f"{p}:{pl['name']}" for p, pl in PLATFORMS])
def test_platform_uses_the_shape(path, platform):
    for key, value in SHAPE.items():
        assert platform.get(key) == value, f"{path} {platform['name']}: {key} differs from shape"
    assert not platform.get("privileged"), f"{path} {platform['name']}: privileged fails here"
    assert platform["image"].startswith("webfleet/debian:"), "images are built locally"


def test_lab_uses_the_shape_file():
    with open(os.path.join(REPO, "playbooks", "lab.yml")) as fh:
        text = fh.read()
    assert "images/shape.yml" in text
    for key in ("capabilities", "cgroupns_mode", "volumes", "tmpfs", "stop_signal", "command"):
        assert f"__lab_shape.{key}" in text, key


def test_both_debian_releases_are_covered():
    images = {pl["image"] for _p, pl in PLATFORMS}
    assert {"webfleet/debian:12", "webfleet/debian:13"} <= images
