"""Seed and read Bitpoll data through Django's ORM (`bitpoll-manage shell -c`), for 0.10 and 0.11."""

import json
import textwrap

# A user with an encrypted CalDAV URL, a universal poll with three choices and two votes.
SEED = textwrap.dedent("""
    from django.utils import timezone
    from bitpoll.base.models import BitpollUser
    from bitpoll.caldav.models import DavCalendar
    from bitpoll.poll.models import Choice, ChoiceValue, Poll, Vote, VoteChoice
    tag = {tag!r}
    user = BitpollUser.objects.create_user("alice-" + tag, "alice@example.org", "correct horse battery")
    DavCalendar.objects.create(user=user, name="work", url="https://dav.example.org/alice?token=" + tag)
    poll = Poll.objects.create(title="Lunch " + tag, url="lunch-" + tag, type="universal")
    values = [ChoiceValue.objects.create(poll=poll, title=title, icon="check", color="00ff00", weight=weight)
              for title, weight in (("yes", 1), ("no", 0))]
    choices = [Choice.objects.create(poll=poll, text=text, sort_key=index)
               for index, text in enumerate(("pizza", "pasta", "salad"))]
    for name, picks in (("bob", (0, 1, 0)), ("carol", (1, 1, 0))):
        vote = Vote.objects.create(poll=poll, name=name, date_created=timezone.now(), comment="")
        for choice, pick in zip(choices, picks):
            VoteChoice.objects.create(vote=vote, choice=choice, value=values[pick], comment="")
""")

SNAPSHOT = textwrap.dedent("""
    import json
    from django.db import connection
    from bitpoll.caldav.models import DavCalendar
    from bitpoll.poll.models import Choice, ChoiceValue, Poll, Vote, VoteChoice
    with connection.cursor() as cursor:
        cursor.execute("SELECT url FROM caldav_davcalendar")
        stored = [row[0] for row in cursor.fetchall()]
    data = {
        "polls": sorted([p.url, p.title, p.type] for p in Poll.objects.all()),
        "choices": sorted([c.poll.url, c.text, c.sort_key] for c in Choice.objects.all()),
        "values": sorted([v.poll.url, v.title, str(v.weight)] for v in ChoiceValue.objects.all()),
        "votes": sorted([v.poll.url, v.name, v.date_created.isoformat()] for v in Vote.objects.all()),
        "vote_choices": sorted([vc.vote.poll.url, vc.vote.name, vc.choice.text, vc.value.title]
                               for vc in VoteChoice.objects.all()),
        "calendars": sorted([c.user.username, c.name, c.url] for c in DavCalendar.objects.all()),
        "stored_calendar_urls": sorted(stored),
    }
    print("SNAPSHOT " + json.dumps(data))
""")

MIGRATIONS = textwrap.dedent("""
    import json
    from django.db.migrations.recorder import MigrationRecorder
    print("MIGRATIONS " + json.dumps(sorted([m.app, m.name] for m in MigrationRecorder.Migration.objects.all())))
""")


def tagged_line(output, tag):
    for line in output.splitlines():
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1 :])
    raise AssertionError(f"no {tag} line in:\n{output}")


def seed(instance, tag):
    instance.shell(SEED.format(tag=tag))


def snapshot(instance):
    data = tagged_line(instance.shell(SNAPSHOT), "SNAPSHOT")
    # The CalDAV URLs are stored encrypted, and read back in clear.
    for (_, _, url), stored in zip(data["calendars"], data["stored_calendar_urls"]):
        assert "token=" not in stored, stored
        assert url.startswith("https://dav.example.org/alice?token=")
    del data["stored_calendar_urls"]
    return data


def applied_migrations(instance):
    return {tuple(m) for m in tagged_line(instance.shell(MIGRATIONS), "MIGRATIONS")}
