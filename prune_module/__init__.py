"""The pruning engine: the channel graph (graph), how channels are ranked (criteria, hrank), thinning by a
schedule (thinning), repair without training (repair) and the printed summary (summary)."""
