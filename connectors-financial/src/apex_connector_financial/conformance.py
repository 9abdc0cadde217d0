"""The QuickBooks Online connector's samples for the Apex conformance suite
(`apex_platform.testing.conformance`): a seeded fake QuickBooks (customers, a vendor,
invoices) with one customer deleted, read two objects per change-data-capture answer,
refresh tokens kept in a file of the suite's own."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from apex_connector_financial import demo
from apex_connector_financial.fake_vendor import REALM, FakeQuickBooks, FakeQuickBooksServer, seed
from apex_platform.testing.conformance.samples import ConformanceSamples


class FinancialSamples(ConformanceSamples):
    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        fake = FakeQuickBooks()
        refresh = fake.connect(REALM)
        ids = seed(fake, REALM)
        fake.delete("Customer", ids["blue"], realm=REALM)
        server = FakeQuickBooksServer(fake)
        base_url = server.start()
        try:
            with tempfile.TemporaryDirectory(prefix="apex-conformance-qbo-") as folder:
                env = demo.demo_environment(base_url)
                env.update(
                    {
                        "APEX_FINANCIAL_REFRESH_TOKENS": json.dumps({REALM: refresh}),
                        "APEX_FINANCIAL_TOKEN_STORE": "file",
                        "APEX_FINANCIAL_TOKEN_STORE_PATH": str(Path(folder) / "tokens.json"),
                        "APEX_FINANCIAL_MAX_OBJECTS": "2",
                    }
                )
                yield env
        finally:
            server.stop()
