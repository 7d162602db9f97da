# The side channel's tasks move here from the agents' API (agentapi): the apps that ask them (grants,
# transfers, netcheck) sit below the API and may not import it. The table is renamed to this app's.

import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('agentapi', '0003_task_offered_at'),
        ('containers', '0002_container_certificate'),
        ('transfers', '0004_file_verify_asked_at'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # The table exists (agentapi's): only Django's picture of the models changes.
            state_operations=[
                migrations.CreateModel(
                    name='AgentTask',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('kind', models.CharField(max_length=40)),
                        ('params', models.JSONField(blank=True, default=dict)),
                        ('state', models.CharField(choices=[('pending', 'Pending'), ('answered', 'Answered'), ('expired', 'Expired')], default='pending', max_length=10)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('expires_at', models.DateTimeField()),
                        ('answered_at', models.DateTimeField(blank=True, null=True)),
                        ('offered_at', models.DateTimeField(blank=True, null=True)),
                        ('ok', models.BooleanField(null=True)),
                        ('result', models.JSONField(blank=True, null=True)),
                        ('error', models.TextField(blank=True)),
                        ('command', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='tasks', to='transfers.command')),
                        ('container', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='tasks', to='containers.container')),
                        ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'ordering': ['created_at', 'id'],
                        'indexes': [models.Index(fields=['container', 'state', 'created_at'], name='agent_task_pending_idx'), models.Index(fields=['state', 'expires_at'], name='agent_task_due_idx')],
                        'db_table': 'agentapi_agenttask',
                    },
                ),
            ],
        ),
        migrations.AlterModelTable(name='agenttask', table=None),
    ]
