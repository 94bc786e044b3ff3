"""Publishing: the MQTT link, command validation and Home Assistant discovery."""
