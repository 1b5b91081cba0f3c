"""Long jobs of a run other than training (evaluation; export later), run under the supervisor."""
