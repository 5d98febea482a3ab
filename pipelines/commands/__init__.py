"""One module per `rmclean` command: its flags (`add_parser`) and what it runs (`run`)."""
