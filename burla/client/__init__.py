"""The client side of remote_parallel_map: serialize, submit, follow results and logs."""
