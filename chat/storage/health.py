"""Whether DynamoDB answers this process, for /readyz."""

from chat import keys
from chat.storage import dynamo, schema


async def probe() -> None:
    """Read a key that is never written (one eventually consistent GetItem,
    half a read unit, the data plane's own session and credentials). Returns
    once DynamoDB answered; raises StorageUnavailable if it did not within
    the caller's storage.deadline, or refused (say, the table is missing)."""
    await dynamo.call("GetItem", {"TableName": schema.table(), "Key": dynamo.to_item(keys.readiness_probe())})
