"""One module per task family: data -> head -> loss -> metrics."""
