"""What both faces need and only faces need: the session facade and the list views."""
