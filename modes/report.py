"""--mode report: draw a report again from its report.json."""
import argparse

from compression_tool.commen_utils.errors import UserError

from .registry import Mode, register


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("report")
    g.add_argument("--report_json", help="the report.json (from pruning_analysis_tools/report.py) to draw the report "
                                         "from; earlier versions read it from --result_json, which still works")
    g.add_argument("--report_dir", help="where to draw the report again (default: beside the JSON)")


def run(args: argparse.Namespace) -> None:
    from compression_tool.pruning_analysis_tools.report import rebuild_report
    source = args.report_json or args.result_json  # --result_json is every other mode's output: only the old spelling
    if not source:
        raise UserError("--mode report needs --report_json: the report.json to draw the report from")
    rebuild_report(source, args.report_dir)


register(Mode("report", add_flags, run))
