"""`everanimate batch JOBS`: many videos, one model load per worker, one worker per GPU, one list shared by
every machine. jobs.py reads and validates the list; claims.py says which worker has which job; worker.py
runs the jobs through one `Animator`; pool.py starts a worker per GPU; status.py follows their events;
session.py puts it together and merges the results. No torch here: the Animator imports it when it loads."""
