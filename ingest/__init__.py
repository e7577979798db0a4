"""Everything that produces events: the tracking SDK (``sdk``) and the event logs (``log``)."""
