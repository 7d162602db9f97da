from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('agentapi', '0003_task_offered_at'),
        ('containers', '0003_agent_task'),
        # Nothing may point at this app's AgentTask when it leaves Django's picture of the models.
        ('netcheck', '0002_task_in_containers'),
    ]

    operations = [
        # The table now belongs to containers.AgentTask (containers/0003_agent_task).
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name='AgentTask')]),
    ]
