from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):

    dependencies = [
        ('containers', '0003_agent_task'),
        ('netcheck', '0001_initial'),
    ]

    operations = [
        # Only Django's picture changes: the column's foreign key followed the table when
        # containers/0003_agent_task renamed it (PostgreSQL keeps it by the table's identity, SQLite
        # rewrites it), in both directions.
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.AlterField(
                model_name='networkcheck',
                name='task',
                field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='network_check', to='containers.agenttask'),
            ),
        ]),
    ]
