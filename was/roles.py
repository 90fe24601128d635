"""Who is who in WAS: the web roles, which roles reach which area, and the
role API keys act with. The app, the page modules and the API all read these
(nothing here imports the rest of WAS)."""

from ums.store import users

#: The web roles, kept with the users (`ums user` reads them too).
ALL_ROLES = users.ROLES

#: Which roles reach which area; admin reaches everything.
OPERATORS = ("admin", "operator")
MARKETERS = ("admin", "marketer")
FINANCE = ("admin", "operator")
ADMINS = ("admin",)
#: The role API callers act with (:mod:`was.api_auth`); API routes list it among their roles.
API_ROLE = "api"
