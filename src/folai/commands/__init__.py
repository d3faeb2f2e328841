"""CLI subcommands; each module provides add_arguments(parser) and run(args)."""
