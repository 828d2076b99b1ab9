"""What every other package leans on, in the standard library alone.

- ``errors``: ``UserError``, the one kind of a user's mistake (a one-line message naming the file);
- ``faults``: data faults reported as one-line warnings (the run goes on and counts them);
- ``atomic``: files written whole or not at all (temp name, fsync, rename);
- ``cli``: one-line usage errors, range-checked numbers, exit codes of the tools;
- ``progress``: a bar on a terminal, periodic plain lines in a log;
- ``processes``: whether the process a lock or a temp name records is still alive;
- ``pool``: process pools whose workers die with their parent.
"""
