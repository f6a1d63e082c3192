"""The table's schema: its name, key attributes and indexes, as created by
the control plane (chat.storage.control) and queried by the entity modules.
Key strings are spelled in chat.keys."""

from typing import Any

from django.conf import settings

# LSI1 sorts a room's items by `seq` (number), to find a message's key from a
# seq cursor. Only message items carry `seq`: any other item of a room's
# partition with that attribute would show up in seq queries.
SEQ_INDEX = "LSI1"
# GSI1 on the participation items (GSI1PK = USERROOMS#{userId}, GSI1SK = when
# they joined): the reference's layout, kept so that its readers still find a
# user's rooms there. This server reads participations by their primary key.
USER_ROOMS_INDEX = "GSI1"
# GSI1 also holds the Connection items (GSI1PK = SERVERCONNECTIONS#{owner},
# GSI1SK = connection id): the reaper of a dead server process reads them.
SERVER_CONNECTIONS_INDEX = USER_ROOMS_INDEX
TTL_ATTRIBUTE = "ttl"


def table() -> str:
    return settings.DYNAMODB_TABLE


def table_spec() -> dict[str, Any]:
    """CreateTable's arguments: on-demand, PK/SK strings, GSI1, LSI1."""
    key_schema = [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}]
    return {
        "TableName": table(),
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": key_schema,
        "AttributeDefinitions": [
            *({"AttributeName": name, "AttributeType": "S"} for name in ("PK", "SK", "GSI1PK", "GSI1SK")),
            {"AttributeName": "seq", "AttributeType": "N"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": USER_ROOMS_INDEX,
                "KeySchema": [
                    {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "LocalSecondaryIndexes": [
            {
                "IndexName": SEQ_INDEX,
                "KeySchema": [key_schema[0], {"AttributeName": "seq", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    }
