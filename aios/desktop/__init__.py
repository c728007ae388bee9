"""The desktop around AIOS: the tray icon's backends (StatusNotifierItem with its dbusmenu,
XEmbed, pystray's own), the icon's drawing, notifications, start at login, and opening folders.

Nothing here knows runs, the server or the facade: ``aios.tray`` is the face that ties these to
AIOS, and the facade, the server and the CLI use only ``opener`` and ``autostart``.
"""
