from l2chaos.stacks.perpdex.common.http import run_main
from l2chaos.stacks.perpdex.sequencer.config import SequencerConfig
from l2chaos.stacks.perpdex.sequencer.service import SequencerService

run_main("sequencer", SequencerService, SequencerConfig.from_env)
