"""The database cache's table (settings.CACHES), where throttles count requests: made by a migration so every
place that migrates (the box, the compose file's portal-init, the test servers, a deployment of one's own) has
it, with no second command to forget. `createcachetable` skips a table that exists and caches that are not in
the database."""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_sign_in_address")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
