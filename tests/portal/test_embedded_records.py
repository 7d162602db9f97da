"""A record of an app above, shown inside one below: the transfer's network check (netcheck sits above
transfers, so it lends its serializer at start-up rather than being imported)."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from portal.lib import embedded
from portal.netcheck.api.serializers import NetworkCheckSerializer


def test_netcheck_lends_the_serializer_of_its_checks():
    assert embedded.serializer_for("netcheck.NetworkCheck") is NetworkCheckSerializer


def test_a_record_nobody_lent_is_named_in_the_error():
    with pytest.raises(LookupError, match="no serializer was lent for nowhere.Thing"):
        embedded.serializer_for("nowhere.Thing")


def test_the_schema_documents_the_transfers_check_as_the_check_itself():
    schemas = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    for component in ("TransferStatus", "Transfer"):
        field = schemas[component]["properties"]["network_check"]
        assert field["allOf"] == [{"$ref": "#/components/schemas/NetworkCheck"}]
        assert field["readOnly"] is True and field["nullable"] is True
