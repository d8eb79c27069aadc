"""Flask extensions, created unbound and bound to the app in create_app()."""

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx

from core.schema import Base

db = SQLAlchemy(model_class=Base)  # the session of each app context; the models are core's
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
migrate = Migrate()
htmx = Htmx()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
talisman = Talisman()  # security headers: app/security.py configures it
