"""Word when a run ends: the settings file's ``notify`` section (settings), what a notification says and the
detached sender that delivers it (announce), and the sending itself, ``python -m engine notify`` (send).
Standard library and PyYAML only: the supervisor, the queue's runner and the app all read it."""
