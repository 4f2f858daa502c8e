"""The Exceptions page: the queue's model, the detail pane of one exception, the page."""
