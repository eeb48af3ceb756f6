from l2chaos.stacks.perpdex.common.http import run_main
from l2chaos.stacks.perpdex.sequencer.service import SequencerService

run_main("sequencer", SequencerService.from_env)
