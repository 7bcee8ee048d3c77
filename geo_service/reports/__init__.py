"""Reports: intake from every channel, routing to grid and unit, the closed loop."""
