"""One module per noun: collection, job, history (and logs), device, broadcast, webjob."""
