"""--mode report: draw a report again from its report.json."""
import argparse

from compression_tool.commen_utils.errors import UserError

from .registry import Mode, register


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("report (reads --result_json: a report.json from pruning_analysis_tools/report.py)")
    g.add_argument("--report_dir", help="where to draw the report again (default: beside the JSON)")


def run(args: argparse.Namespace) -> None:
    from compression_tool.pruning_analysis_tools.report import rebuild_report
    if not args.result_json:
        raise UserError("--mode report needs --result_json: the report.json to draw the report from")
    rebuild_report(args.result_json, args.report_dir)


register(Mode("report", add_flags, run))
