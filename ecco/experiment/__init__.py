"""Attribution experiments at dataset scale: many items, several methods, faithfulness scores,
streamed to Arrow shards (resumable, on one machine or Ray) and compared per method."""
from .api import attribute_dataset
from .items import Item, as_items
from .reader import Experiment

__all__ = ["attribute_dataset", "Experiment", "Item", "as_items"]
