"""Reading SLURM's answers about array tasks, from captured output (no SLURM needed): a task
cancelled alone while the rest of its array runs is found through scontrol or sacct."""

from cluster.jobs import parse_sacct, parse_scontrol, parse_squeue, unknown_jobs

# `squeue --noheader --array --format=%i|%T --jobs=13` after `scancel 13_1`: task 1 is gone
SQUEUE = "13_0|RUNNING\n13_[2-3%1]|PENDING\n"

# `scontrol --oneliner show job 13` at the same moment (fields shortened)
SCONTROL = (
    "JobId=14 ArrayJobId=13 ArrayTaskId=0 JobName=study-levels UserId=root(0) "
    "JobState=RUNNING Reason=None Dependency=(null) RunTime=00:01:02 TimeLimit=01:00:00\n"
    "JobId=15 ArrayJobId=13 ArrayTaskId=1 JobName=study-levels UserId=root(0) "
    "JobState=CANCELLED Reason=None Dependency=(null) RunTime=00:00:40 TimeLimit=01:00:00\n"
    "JobId=13 ArrayJobId=13 ArrayTaskId=2-3%1 ArrayTaskThrottle=1 JobName=study-levels "
    "UserId=root(0) JobState=PENDING Reason=JobArrayTaskLimit Dependency=(null)\n"
)

# `sacct --noheader --parsable2 --format=JobID,State --jobs=13` after scontrol forgot the task
SACCT = (
    "13_0|RUNNING\n13_0.batch|RUNNING\n13_1|CANCELLED by 0\n13_1.batch|CANCELLED\n"
    "13_[2-3%1]|PENDING\n"
)

TASKS = ["13_0", "13_1", "13_2", "13_3", "12"]


def test_squeue_expands_pending_ranges_and_leaves_a_cancelled_task_unknown():
    states = parse_squeue(SQUEUE)
    assert states == {"13_0": "RUNNING", "13_2": "PENDING", "13_3": "PENDING"}
    # the cancelled task and the finished simulate job (12) must be asked elsewhere
    assert unknown_jobs(TASKS, states) == ["13_1", "12"]


def test_scontrol_names_the_cancelled_task():
    states = parse_scontrol(SCONTROL)
    assert states == {
        "13_0": "RUNNING",
        "13_1": "CANCELLED",
        "13_2": "PENDING",
        "13_3": "PENDING",
    }
    merged = {**states, **parse_squeue(SQUEUE)}
    assert unknown_jobs(TASKS, merged) == ["12"]


def test_sacct_names_the_cancelled_task_and_skips_steps():
    assert parse_sacct(SACCT) == {
        "13_0": "RUNNING",
        "13_1": "CANCELLED",
        "13_2": "PENDING",
        "13_3": "PENDING",
    }


def test_a_task_listed_under_its_arrays_own_id_is_known():
    # a level array that has not started at all may be listed as its own id
    assert unknown_jobs(["20_0", "20_1"], parse_squeue("20|PENDING\n")) == []
    assert parse_scontrol("JobId=7 JobState=COMPLETED Reason=None\n") == {"7": "COMPLETED"}
    assert parse_squeue("") == {} and parse_sacct("") == {}
