"""The box: the portal, a receiver and a sender as local processes on one machine
(`make demo`, `make run`), driven through the same API and programs a person uses."""
