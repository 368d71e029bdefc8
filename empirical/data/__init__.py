"""Natural images: the one image reader and PNG writer, crops, the photo corpus, a user's
directories, source ids and source-disjoint splits, and common shifts."""
