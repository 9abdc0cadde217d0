"""The HubSpot CRM connector's samples for the Apex conformance suite
(`apex_platform.testing.conformance`): a seeded fake HubSpot (two companies, three
contacts, two deals) with one contact archived, read one object per search page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from apex_connector_crm import demo
from apex_connector_crm.fake_vendor import FakeHubSpot, FakeHubSpotServer, seed
from apex_platform.testing.conformance.samples import ConformanceSamples


class CrmSamples(ConformanceSamples):
    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        fake = FakeHubSpot()
        ids = seed(fake)
        fake.archive("contacts", ids["cy"])  # a deletion: the archived listing gives its tombstone
        server = FakeHubSpotServer(fake)
        base_url = server.start()
        try:
            env = demo.demo_environment(base_url)
            env.update({"APEX_CRM_OBJECTS": "contacts", "APEX_CRM_PAGE_SIZE": "1"})
            yield env
        finally:
            server.stop()
