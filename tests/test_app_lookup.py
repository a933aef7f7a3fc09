"""lookup_specs: one image is awaited in place, several concurrently; both ways answer the same
(specs in order, failures by policy, anything else raised as it is)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from aiohttp import web

from extender.errors import ImageLookupError
from extender.http.app import build_app
from extender.http.context import METRICS, lookup_specs
from extender.match.table import FeatureTable
from extender.sources.base import StaticFeatures, StaticSpecs
from extender.spec.model import Spec
from extender.spec.variants import ImageSpec
from tests.helpers import S

SPEC = S([])


class Exploding(StaticSpecs):
    """A source whose lookup of ``boom:1`` fails with an error that is not a lookup failure."""

    async def lookup_variants(self, image: str, platforms: Sequence[str]) -> ImageSpec | None:
        if image == "boom:1":
            raise RuntimeError("a bug, not a lookup failure")
        return await super().lookup_variants(image, platforms)


def _app(specs: dict[str, Spec], failing: dict[str, str]) -> web.Application:
    return build_app(StaticFeatures(FeatureTable()), Exploding(specs, failing))


@pytest.mark.parametrize(
    "images",
    [["ok:1"], ["none:1"], ["ok:1", "none:1", "other:1"]],
)
async def test_specs_in_order(images: list[str]) -> None:
    app = _app({"ok:1": SPEC, "other:1": SPEC}, {})
    found, ignored = await lookup_specs(app, images, "Fail")
    assert [f.image for f in found] == [i for i in images if i != "none:1"] and ignored == {}


@pytest.mark.parametrize("images", [["bad:1"], ["ok:1", "bad:1"]])
async def test_failed_lookup_by_policy(images: list[str]) -> None:
    app = _app({"ok:1": SPEC}, {"bad:1": "registry answered 503"})
    with pytest.raises(ImageLookupError, match="bad:1: registry answered 503"):
        await lookup_specs(app, images, "Fail")
    found, ignored = await lookup_specs(app, images, "Ignore")
    assert [f.image for f in found] == images[:-1] and ignored == {"bad:1": "registry answered 503"}
    counted = app[METRICS].lookup_errors
    assert counted.labels("Fail")._value.get() == 1 and counted.labels("Ignore")._value.get() == 1


@pytest.mark.parametrize("images", [["boom:1"], ["ok:1", "boom:1"]])
async def test_other_errors_are_raised_as_they_are(images: list[str]) -> None:
    app = _app({"ok:1": SPEC}, {})
    with pytest.raises(RuntimeError, match="a bug"):
        await lookup_specs(app, images, "Ignore")
