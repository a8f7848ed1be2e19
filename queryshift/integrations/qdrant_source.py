"""Old path of :mod:`queryshift.integrations.qdrant.training_data`, kept so existing imports keep working."""

from queryshift.integrations.qdrant.training_data import (
    collection_distance,
    load_training_data_from_qdrant,
    mine_hard_negatives_from_qdrant,
    parse_point_id,
)

__all__ = [
    "load_training_data_from_qdrant",
    "mine_hard_negatives_from_qdrant",
    "collection_distance",
    "parse_point_id",
]
