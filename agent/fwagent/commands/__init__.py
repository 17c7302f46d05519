"""One module per fwagent sub-command: add_arguments(parser) and main(args) -> int."""
